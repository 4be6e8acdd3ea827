function __tcpipctl_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __tcpipctl_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __tcpipctl_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __tcpipctl_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __tcpipctl_parse_tokens -S
    set -l unparsed_tokens (__tcpipctl_tokens -pc)
    switch $unparsed_tokens[1]
    case 'tcpipctl'
        __tcpipctl_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'peers'
            __tcpipctl_parse_subcommand 0 'server=' 'name=' 'token-file=' 'hub-id=' 'trust-new-hub' 'insecure-plaintext' 'state-dir=' 'timeout=' 'v/verbose' 'q/quiet' 'include-self' 'watch' 'count=' 'version' 'h/help'
        case 'ping'
            __tcpipctl_parse_subcommand 0 'server=' 'name=' 'token-file=' 'hub-id=' 'trust-new-hub' 'insecure-plaintext' 'state-dir=' 'timeout=' 'v/verbose' 'q/quiet' 'to=' 'count=' 'interval=' 'version' 'h/help'
        case 'send'
            __tcpipctl_parse_subcommand 0 'server=' 'name=' 'token-file=' 'hub-id=' 'trust-new-hub' 'insecure-plaintext' 'state-dir=' 'timeout=' 'v/verbose' 'q/quiet' 'to=+' 'to-key=+' 'all' 'm/message=' 'lines' 'no-wait' 'queue' 'json' 'max-message-size=' 'wait-for-peer=' 'type=' 'version' 'h/help'
        case 'listen'
            __tcpipctl_parse_subcommand 0 'server=' 'name=' 'token-file=' 'hub-id=' 'trust-new-hub' 'insecure-plaintext' 'state-dir=' 'timeout=' 'v/verbose' 'q/quiet' 'raw' 'separator=' 'from=' 'count=' 'type=' 'max-message-size=' 'version' 'h/help'
        case 'send-file'
            __tcpipctl_parse_subcommand -r 1 'server=' 'name=' 'token-file=' 'hub-id=' 'trust-new-hub' 'insecure-plaintext' 'state-dir=' 'timeout=' 'v/verbose' 'q/quiet' 'to=+' 'to-key=+' 'r/recursive' 'follow-symlinks' 'files-from=' '0/null' 'as=' 'compress' 'compress-level=' 'chunk-size=' 'wait-for-peer=' 'queue' 'direct=' 'json' 'progress=' 'remove-source-files' 'all-or-nothing' 'dry-run' 'version' 'h/help'
        case 'queue'
            __tcpipctl_parse_subcommand 0 'server=' 'name=' 'token-file=' 'hub-id=' 'trust-new-hub' 'insecure-plaintext' 'state-dir=' 'timeout=' 'v/verbose' 'q/quiet' 'all' 'version' 'h/help'
        case 'receipts'
            __tcpipctl_parse_subcommand 0 'server=' 'name=' 'token-file=' 'hub-id=' 'trust-new-hub' 'insecure-plaintext' 'state-dir=' 'timeout=' 'v/verbose' 'q/quiet' 'all' 'version' 'h/help'
        case 'id'
            __tcpipctl_parse_subcommand 0 'state-dir=' 'json' 'version' 'h/help'
        case 'help'
            __tcpipctl_parse_subcommand -r 1 'version'
        end
    end
end

function __tcpipctl_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __tcpipctl_parse_subcommand -S -a positional_count
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

function __tcpipctl_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __tcpipctl_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__tcpipctl_tokens -p)
    if test -z "$(__tcpipctl_tokens -t)"
        set -l index (count (__tcpipctl_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'tcpipctl' -f
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_positional "tcpipctl" -eq 1' -fa 'peers' -d 'Print the peers connected to the hub as JSON.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_positional "tcpipctl" -eq 1' -fa 'ping' -d 'Measure the round trip and clock offset to the hub or to a peer.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_positional "tcpipctl" -eq 1' -fa 'send' -d 'Send stdin (or --message) as a message to peers, and wait for their receipts.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_positional "tcpipctl" -eq 1' -fa 'listen' -d 'Print incoming messages to stdout, acknowledging each once it is written.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_positional "tcpipctl" -eq 1' -fa 'send-file' -d 'Send files to receivers and wait until each has verified and stored them.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_positional "tcpipctl" -eq 1' -fa 'queue' -d 'List the files waiting in the hub\'s store for receivers that are away, as JSON lines.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_positional "tcpipctl" -eq 1' -fa 'receipts' -d 'Print what became of files queued in the hub\'s store, as JSON lines.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_positional "tcpipctl" -eq 1' -fa 'id' -d 'Print this node\'s ID, the SHA-256 of its public key (made on first use).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_positional "tcpipctl" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" server' -l 'server' -d 'The hub\'s address (env TCPIP_SERVER).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" name' -l 'name' -d 'The name to register (env TCPIP_NAME; default USER@HOSTNAME, made unique by the hub if taken).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" token-file' -l 'token-file' -d 'Read the hub\'s token from this file (or set TCPIP_TOKEN or TCPIP_TOKEN_FILE; never on the command line).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" hub-id' -l 'hub-id' -d 'Talk TLS to the hub and accept it only if its key has this ID (\'tcpipd id\' on the hub; env TCPIP_HUB_ID). Without it, an ID remembered in known_hubs for the address is used.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" trust-new-hub' -l 'trust-new-hub' -d 'Talk TLS to a hub that known_hubs does not know yet, accept the key it shows and remember it there (said on stderr).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" insecure-plaintext' -l 'insecure-plaintext' -d 'Talk to a hub that is not on loopback without TLS: anyone on the path can read and change everything.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" timeout' -l 'timeout' -d 'Seconds to wait for the hub and for answers.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" v verbose' -s 'v' -l 'verbose' -d 'Log what happens to stderr.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" q quiet' -s 'q' -l 'quiet' -d 'Log nothing but the final error line.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" include-self' -l 'include-self' -d 'Include this client itself.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" watch' -l 'watch' -d 'Keep printing joins, leaves and updates as NDJSON.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" count' -l 'count' -d 'With --watch: exit 0 after this many changes (present lines do not count).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl peers" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" server' -l 'server' -d 'The hub\'s address (env TCPIP_SERVER).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" name' -l 'name' -d 'The name to register (env TCPIP_NAME; default USER@HOSTNAME, made unique by the hub if taken).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" token-file' -l 'token-file' -d 'Read the hub\'s token from this file (or set TCPIP_TOKEN or TCPIP_TOKEN_FILE; never on the command line).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" hub-id' -l 'hub-id' -d 'Talk TLS to the hub and accept it only if its key has this ID (\'tcpipd id\' on the hub; env TCPIP_HUB_ID). Without it, an ID remembered in known_hubs for the address is used.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" trust-new-hub' -l 'trust-new-hub' -d 'Talk TLS to a hub that known_hubs does not know yet, accept the key it shows and remember it there (said on stderr).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" insecure-plaintext' -l 'insecure-plaintext' -d 'Talk to a hub that is not on loopback without TLS: anyone on the path can read and change everything.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" timeout' -l 'timeout' -d 'Seconds to wait for the hub and for answers.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" v verbose' -s 'v' -l 'verbose' -d 'Log what happens to stderr.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" q quiet' -s 'q' -l 'quiet' -d 'Log nothing but the final error line.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" to' -l 'to' -d 'Ping this peer (name or id) instead of the hub.' -rfka '(__tcpipctl_custom_completion ---completion ping -- --to (count (__tcpipctl_tokens -pc)) (__tcpipctl_tokens -tC))'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" count' -l 'count' -d 'Replies to wait for; 0 pings until interrupted.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" interval' -l 'interval' -d 'Seconds between pings.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl ping" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" server' -l 'server' -d 'The hub\'s address (env TCPIP_SERVER).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" name' -l 'name' -d 'The name to register (env TCPIP_NAME; default USER@HOSTNAME, made unique by the hub if taken).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" token-file' -l 'token-file' -d 'Read the hub\'s token from this file (or set TCPIP_TOKEN or TCPIP_TOKEN_FILE; never on the command line).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" hub-id' -l 'hub-id' -d 'Talk TLS to the hub and accept it only if its key has this ID (\'tcpipd id\' on the hub; env TCPIP_HUB_ID). Without it, an ID remembered in known_hubs for the address is used.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" trust-new-hub' -l 'trust-new-hub' -d 'Talk TLS to a hub that known_hubs does not know yet, accept the key it shows and remember it there (said on stderr).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" insecure-plaintext' -l 'insecure-plaintext' -d 'Talk to a hub that is not on loopback without TLS: anyone on the path can read and change everything.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" timeout' -l 'timeout' -d 'Seconds to wait for the hub and for answers.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" v verbose' -s 'v' -l 'verbose' -d 'Log what happens to stderr.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" q quiet' -s 'q' -l 'quiet' -d 'Log nothing but the final error line.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send"' -l 'to' -d 'A recipient: a peer name or id. Repeat for several.' -rfka '(__tcpipctl_custom_completion ---completion send -- --to (count (__tcpipctl_tokens -pc)) (__tcpipctl_tokens -tC))'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send"' -l 'to-key' -d 'A key ID each recipient must prove (repeatable), instead of the one known_peers remembers for its name.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" all' -l 'all' -d 'Send to every connected peer whose role is listener, receiver or classic.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" m message' -s 'm' -l 'message' -d 'Send this text instead of reading stdin.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" lines' -l 'lines' -d 'Send each line of stdin as its own message, as soon as it arrives.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" no-wait' -l 'no-wait' -d 'Do not wait for receipts: exit once the hub has taken the message.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" queue' -l 'queue' -d 'If the recipient is not connected, queue the message in the hub\'s store for it (or set TCPIP_QUEUE=1).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" json' -l 'json' -d 'Print one JSON summary line per recipient to stdout.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" max-message-size' -l 'max-message-size' -d 'Largest message, in bytes.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" wait-for-peer' -l 'wait-for-peer' -d 'Wait up to this long for the recipients to join.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" type' -l 'type' -d 'Send stdin as raw packets of this application type (4096–65535) instead of messages; no receipts.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" server' -l 'server' -d 'The hub\'s address (env TCPIP_SERVER).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" name' -l 'name' -d 'The name to register (env TCPIP_NAME; default USER@HOSTNAME, made unique by the hub if taken).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" token-file' -l 'token-file' -d 'Read the hub\'s token from this file (or set TCPIP_TOKEN or TCPIP_TOKEN_FILE; never on the command line).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" hub-id' -l 'hub-id' -d 'Talk TLS to the hub and accept it only if its key has this ID (\'tcpipd id\' on the hub; env TCPIP_HUB_ID). Without it, an ID remembered in known_hubs for the address is used.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" trust-new-hub' -l 'trust-new-hub' -d 'Talk TLS to a hub that known_hubs does not know yet, accept the key it shows and remember it there (said on stderr).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" insecure-plaintext' -l 'insecure-plaintext' -d 'Talk to a hub that is not on loopback without TLS: anyone on the path can read and change everything.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" timeout' -l 'timeout' -d 'Seconds to wait for the hub and for answers.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" v verbose' -s 'v' -l 'verbose' -d 'Log what happens to stderr.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" q quiet' -s 'q' -l 'quiet' -d 'Log nothing but the final error line.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" raw' -l 'raw' -d 'Write only the message bytes, each followed by --separator.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" separator' -l 'separator' -d 'With --raw: what follows each message (\\n, \\0, \\t escapes; \'\' for nothing).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" from' -l 'from' -d 'Take messages only from this peer (name or id); others are refused.' -rfka '(__tcpipctl_custom_completion ---completion listen -- --from (count (__tcpipctl_tokens -pc)) (__tcpipctl_tokens -tC))'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" count' -l 'count' -d 'Exit 0 after this many messages.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" type' -l 'type' -d 'Print packets of this application type (4096–65535) instead of messages.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" max-message-size' -l 'max-message-size' -d 'Largest message accepted, in bytes.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl listen" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" server' -l 'server' -d 'The hub\'s address (env TCPIP_SERVER).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" name' -l 'name' -d 'The name to register (env TCPIP_NAME; default USER@HOSTNAME, made unique by the hub if taken).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" token-file' -l 'token-file' -d 'Read the hub\'s token from this file (or set TCPIP_TOKEN or TCPIP_TOKEN_FILE; never on the command line).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" hub-id' -l 'hub-id' -d 'Talk TLS to the hub and accept it only if its key has this ID (\'tcpipd id\' on the hub; env TCPIP_HUB_ID). Without it, an ID remembered in known_hubs for the address is used.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" trust-new-hub' -l 'trust-new-hub' -d 'Talk TLS to a hub that known_hubs does not know yet, accept the key it shows and remember it there (said on stderr).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" insecure-plaintext' -l 'insecure-plaintext' -d 'Talk to a hub that is not on loopback without TLS: anyone on the path can read and change everything.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" timeout' -l 'timeout' -d 'Seconds to wait for the hub and for answers.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" v verbose' -s 'v' -l 'verbose' -d 'Log what happens to stderr.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" q quiet' -s 'q' -l 'quiet' -d 'Log nothing but the final error line.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file"' -l 'to' -d 'A recipient: a peer name or id. Repeat for several.' -rfka '(__tcpipctl_custom_completion ---completion send-file -- --to (count (__tcpipctl_tokens -pc)) (__tcpipctl_tokens -tC))'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file"' -l 'to-key' -d 'A key ID each recipient must prove (repeatable), instead of the one known_peers remembers for its name.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" r recursive' -s 'r' -l 'recursive' -d 'Send directories as trees: each file under its path relative to the directory\'s parent (to the directory itself when it ends with /). The receiver recreates the tree inside its spool.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" follow-symlinks' -l 'follow-symlinks' -d 'With -r: follow symbolic links inside directories (by default they are skipped).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" files-from' -l 'files-from' -d 'Also send the files named in this list, one per line (- reads the list from stdin). For long lists; or put the names after -- (thousands of names before it parse slowly).' -rF
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" 0 null' -s '0' -l 'null' -d 'Names in --files-from end with NUL (find -print0).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" as' -l 'as' -d 'The name to store a single file (or stdin) under.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" compress' -l 'compress' -d 'Compress each chunk with zlib; chunks that do not shrink go raw.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" compress-level' -l 'compress-level' -d 'zlib level for --compress (1 fastest … 9 smallest).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" chunk-size' -l 'chunk-size' -d 'Bytes per chunk.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" wait-for-peer' -l 'wait-for-peer' -d 'Wait up to this long for the recipients to join.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" queue' -l 'queue' -d 'If the recipient is not connected, queue the files in the hub\'s store for it (or set TCPIP_QUEUE=1). One --to only.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" direct' -l 'direct' -d 'auto: to a single receiver, point to point when the hub can introduce it and it answers, through the hub otherwise (env TCPIP_DIRECT); never: always through the hub; only: point to point or fail (75).' -rfka 'auto never only'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" json' -l 'json' -d 'Print one JSON line per file and recipient to stdout.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" progress' -l 'progress' -d 'Progress on stderr: auto (when stderr is a terminal), always, never.' -rfka 'auto always never'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" remove-source-files' -l 'remove-source-files' -d 'Delete each local file once every recipient has confirmed it.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" all-or-nothing' -l 'all-or-nothing' -d 'Send nothing if any input cannot be read (66). Without it, what can be read is sent and each input that cannot is reported; the exit status is then the most severe.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" dry-run' -l 'dry-run' -d 'Send nothing: check that every recipient is connected and takes files, and print one JSON line per file and recipient with status would-send (or unreadable).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl send-file" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" server' -l 'server' -d 'The hub\'s address (env TCPIP_SERVER).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" name' -l 'name' -d 'The name to register (env TCPIP_NAME; default USER@HOSTNAME, made unique by the hub if taken).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" token-file' -l 'token-file' -d 'Read the hub\'s token from this file (or set TCPIP_TOKEN or TCPIP_TOKEN_FILE; never on the command line).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" hub-id' -l 'hub-id' -d 'Talk TLS to the hub and accept it only if its key has this ID (\'tcpipd id\' on the hub; env TCPIP_HUB_ID). Without it, an ID remembered in known_hubs for the address is used.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" trust-new-hub' -l 'trust-new-hub' -d 'Talk TLS to a hub that known_hubs does not know yet, accept the key it shows and remember it there (said on stderr).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" insecure-plaintext' -l 'insecure-plaintext' -d 'Talk to a hub that is not on loopback without TLS: anyone on the path can read and change everything.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" timeout' -l 'timeout' -d 'Seconds to wait for the hub and for answers.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" v verbose' -s 'v' -l 'verbose' -d 'Log what happens to stderr.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" q quiet' -s 'q' -l 'quiet' -d 'Log nothing but the final error line.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" all' -l 'all' -d 'Everyone\'s files, not only yours (registers with role operator; with --authorized-peers the hub\'s line for your key must name that role).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl queue" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" server' -l 'server' -d 'The hub\'s address (env TCPIP_SERVER).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" name' -l 'name' -d 'The name to register (env TCPIP_NAME; default USER@HOSTNAME, made unique by the hub if taken).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" token-file' -l 'token-file' -d 'Read the hub\'s token from this file (or set TCPIP_TOKEN or TCPIP_TOKEN_FILE; never on the command line).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" hub-id' -l 'hub-id' -d 'Talk TLS to the hub and accept it only if its key has this ID (\'tcpipd id\' on the hub; env TCPIP_HUB_ID). Without it, an ID remembered in known_hubs for the address is used.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" trust-new-hub' -l 'trust-new-hub' -d 'Talk TLS to a hub that known_hubs does not know yet, accept the key it shows and remember it there (said on stderr).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" insecure-plaintext' -l 'insecure-plaintext' -d 'Talk to a hub that is not on loopback without TLS: anyone on the path can read and change everything.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" timeout' -l 'timeout' -d 'Seconds to wait for the hub and for answers.' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" v verbose' -s 'v' -l 'verbose' -d 'Log what happens to stderr.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" q quiet' -s 'q' -l 'quiet' -d 'Log nothing but the final error line.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" all' -l 'all' -d 'Everyone\'s files, not only yours (registers with role operator; with --authorized-peers the hub\'s line for your key must name that role).'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl receipts" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl id" state-dir' -l 'state-dir' -d 'Where this node\'s key (key.pem, cert.pem) and known_hubs live (env TCPIP_STATE_DIR; default $XDG_CONFIG_HOME/tcpip or ~/.config/tcpip).' -rfka ''
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl id" json' -l 'json' -d 'Print a JSON object instead of the bare ID.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl id" version' -l 'version' -d 'Show the version.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl id" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tcpipctl' -n '__tcpipctl_should_offer_completions_for_flags_or_options "tcpipctl help" version' -l 'version' -d 'Show the version.'
