function __tcpipd_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __tcpipd_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __tcpipd_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __tcpipd_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __tcpipd_parse_tokens -S
    set -l unparsed_tokens (__tcpipd_tokens -pc)
    switch $unparsed_tokens[1]
    case 'tcpipd'
        __tcpipd_parse_subcommand 0 'listen=' 'token-file=' 'insecure-no-token' 'tls' 'authorized-peers=' 'enroll-token-file=' 'insecure-plaintext' 'classic-listen=' 'state-dir=' 'store=' 'store-max-bytes=' 'store-max-age=' 'store-receipt-max-age=' 'max-frame-size=' 'max-queued-bytes=' 'ping-interval=' 'registration-timeout=' 'max-unregistered=' 'max-unregistered-per-source=' 'write-timeout=' 'threads=' 'log-level=' 'log-format=' 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'id'
            __tcpipd_parse_subcommand 0 'state-dir=' 'json' 'version' 'h/help'
        case 'help'
            __tcpipd_parse_subcommand -r 1 'version'
        end
    end
end

function __tcpipd_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __tcpipd_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __tcpipd_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __tcpipd_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__tcpipd_tokens -p)
    if test -z "$(__tcpipd_tokens -t)"
        set -l index (count (__tcpipd_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'tcpipd' -f
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" listen' -l 'listen' -d 'Address to listen on; port 0 picks a free port.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" token-file' -l 'token-file' -d 'Require the token in this file from every client (or set TCPIP_TOKEN).' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" insecure-no-token' -l 'insecure-no-token' -d 'Let anyone who can reach a non-loopback address join: no token and no --authorized-peers.'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" tls' -l 'tls' -d 'Use TLS 1.3 on every connection, with this hub\'s node key (see \'tcpipd id\').'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" authorized-peers' -l 'authorized-peers' -d 'Let only the keys in this file register, each with its name (implies --tls).' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" enroll-token-file' -l 'enroll-token-file' -d 'Let an unknown key that presents the token in this file add itself to --authorized-peers once.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" insecure-plaintext' -l 'insecure-plaintext' -d 'Allow a non-loopback address without TLS: everything, the token included, crosses in clear.'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" classic-listen' -l 'classic-listen' -d 'Also take clients of the seed article\'s original TCPIPClient (its 1024-byte wire, port 9999 by default) on this address: plaintext, no key, no token; loopback unless --insecure-plaintext.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" store' -l 'store' -d 'Hold files queued for receivers that are away in this directory (send-file --queue).' -rfa '(__tcpipd_complete_directories)'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" store-max-bytes' -l 'store-max-bytes' -d 'Bytes the store may hold; a file that would pass it is refused before it is sent.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" store-max-age' -l 'store-max-age' -d 'Seconds a queued file waits for its receiver before it expires (default 7 days).' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" store-receipt-max-age' -l 'store-receipt-max-age' -d 'Seconds the store keeps receipts for senders to read (default 30 days).' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" max-frame-size' -l 'max-frame-size' -d 'Largest frame accepted, header included.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" max-queued-bytes' -l 'max-queued-bytes' -d 'Bytes queued towards one connection before the hub stops reading its senders.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" ping-interval' -l 'ping-interval' -d 'Seconds between heartbeats; a peer silent for three is dropped.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" registration-timeout' -l 'registration-timeout' -d 'Seconds a new connection has to register.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" max-unregistered' -l 'max-unregistered' -d 'Connections waiting to register at once, from all sources; past it a waiting one is shed for a newcomer.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" max-unregistered-per-source' -l 'max-unregistered-per-source' -d 'Connections waiting to register at once from one address (IPv6: one /64); more from it are told busy.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" write-timeout' -l 'write-timeout' -d 'Seconds a peer may make no progress reading before it is dropped.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" threads' -l 'threads' -d 'Threads for connections (accepting, TLS, framing, writing); routing has one more of its own. Default: one per core, less one (at least one).' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" log-level' -l 'log-level' -d 'trace, debug, info, notice, warning, error or critical.' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" log-format' -l 'log-format' -d 'text or json.' -rfka 'text json'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_positional "tcpipd" -eq 1' -fa 'id' -d 'Print this node\'s ID, the SHA-256 of its public key (made on first use).'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_positional "tcpipd" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd id" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd id" json' -l 'json' -d 'Print a JSON object instead of the bare ID.'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd id" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd id" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipd' -n '__tcpipd_should_offer_completions_for_flags_or_options "tcpipd help" version' -l 'version' -d 'Show the version.'
