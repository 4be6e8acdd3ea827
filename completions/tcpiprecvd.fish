function __tcpiprecvd_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __tcpiprecvd_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __tcpiprecvd_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __tcpiprecvd_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __tcpiprecvd_parse_tokens -S
    set -l unparsed_tokens (__tcpiprecvd_tokens -pc)
    switch $unparsed_tokens[1]
    case 'tcpiprecvd'
        __tcpiprecvd_parse_subcommand 0 'server=' 'name=' 'token-file=' 'hub-id=' 'trust-new-hub' 'insecure-plaintext' 'state-dir=' 'timeout=' 'v/verbose' 'q/quiet' 'spool=' 'exec=' 'exec-jobs=' 'allow-from=+' 'accept-classic' 'max-file-size=' 'min-free-space=' 'always-store' 'partial-max-age=' 'grace=' 'name-wait=' 'log-format=' 'direct-listen=' 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'id'
            __tcpiprecvd_parse_subcommand 0 'state-dir=' 'json' 'version' 'h/help'
        case 'help'
            __tcpiprecvd_parse_subcommand -r 1 'version'
        end
    end
end

function __tcpiprecvd_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __tcpiprecvd_parse_subcommand -S -a positional_count
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

function __tcpiprecvd_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __tcpiprecvd_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__tcpiprecvd_tokens -p)
    if test -z "$(__tcpiprecvd_tokens -t)"
        set -l index (count (__tcpiprecvd_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'tcpiprecvd' -f
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" server' -l 'server' -d 'The hub\'s address (env TCPIP_SERVER).' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" name' -l 'name' -d 'The name to register (env TCPIP_NAME; default USER@HOSTNAME, made unique by the hub if taken).' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" token-file' -l 'token-file' -d 'Read the hub\'s token from this file (or set TCPIP_TOKEN or TCPIP_TOKEN_FILE; never on the command line).' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" hub-id' -l 'hub-id' -d 'Talk TLS to the hub and accept it only if its key has this ID (\'tcpipd id\' on the hub; env TCPIP_HUB_ID). Without it, an ID remembered in known_hubs for the address is used.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" trust-new-hub' -l 'trust-new-hub' -d 'Talk TLS to a hub that known_hubs does not know yet, accept the key it shows and remember it there (said on stderr).'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" insecure-plaintext' -l 'insecure-plaintext' -d 'Talk to a hub that is not on loopback without TLS: anyone on the path can read and change everything.'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" timeout' -l 'timeout' -d 'Seconds to wait for the hub and for answers.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" v verbose' -s 'v' -l 'verbose' -d 'Log what happens to stderr.'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" q quiet' -s 'q' -l 'quiet' -d 'Log nothing but the final error line.'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" spool' -l 'spool' -d 'The spool directory (created if missing; required to run).' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" exec' -l 'exec' -d 'After each file is stored, run this command (split on spaces, no shell; checked at start-up); TCPIP_FILE, TCPIP_NAME, TCPIP_FROM, TCPIP_FROM_ID, TCPIP_SHA256, TCPIP_SIZE are set.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" exec-jobs' -l 'exec-jobs' -d 'Hooks running at once.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd"' -l 'allow-from' -d 'Take files and messages only from this peer (name, id, or key ID: only a key ID is proof); repeatable.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" accept-classic' -l 'accept-classic' -d 'Take files from clients of the hub\'s classic listener (tcpipd --classic-listen). Off by default: their wire proves no key and carries no digest, so only the size is checked.'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" max-file-size' -l 'max-file-size' -d 'Refuse files larger than this many bytes.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" min-free-space' -l 'min-free-space' -d 'Refuse a file when fewer than this many bytes would stay free.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" always-store' -l 'always-store' -d 'Store every file, even one already in the spool under the name it was sent as with the same SHA-256 (by default that is acknowledged as already-stored and not stored twice).'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" partial-max-age' -l 'partial-max-age' -d 'Seconds to keep the partial file of a resumable transfer that broke off, counted from its last write (default 3 days, 60 at least); older ones are removed at start-up and whenever a resumable transfer starts.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" grace' -l 'grace' -d 'Seconds running transfers may take to finish on SIGTERM.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" name-wait' -l 'name-wait' -d 'While the name is taken by another peer, retry for this long, then exit 75.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" log-format' -l 'log-format' -d 'text or json.' -rfka 'text json'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" direct-listen' -l 'direct-listen' -d 'Take files point to point from senders the hub introduces: ADDR:PORT (port 0: any free port), auto (with TLS every address, any free port; without TLS 127.0.0.1 only) or off.' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" version' -l 'version' -d 'Show the version.'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_positional "tcpiprecvd" -eq 1' -fa 'id' -d 'Print this node\'s ID, the SHA-256 of its public key (made on first use).'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_positional "tcpiprecvd" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd id" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd id" json' -l 'json' -d 'Print a JSON object instead of the bare ID.'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd id" version' -l 'version' -d 'Show the version.'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd id" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpiprecvd' -n '__tcpiprecvd_should_offer_completions_for_flags_or_options "tcpiprecvd help" version' -l 'version' -d 'Show the version.'
