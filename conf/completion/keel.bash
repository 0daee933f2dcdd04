# SPDX-License-Identifier: MIT
# bash completion for keel, and for any program built on Keel (`complete -F _keel qworker`): the
# commands, options and configuration keys come from the program itself (--help, config --keys),
# so a plugin's command or key completes too.

_keel_commands() {
    "$1" --help 2>/dev/null | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z0-9-]*\) .*/\1/p'
}

_keel_options() {
    "$1" --help 2>/dev/null | sed -n '/^Options:/,/^$/p' | grep -o -- '--[a-z][a-z-]*' | sort -u
}

# "key=" for every key; with a value begun, the values of a key whose type lists them.
_keel_set_words() {
    local program=$1 key=$2
    if [[ -z $key ]]; then
        "$program" config --keys 2>/dev/null | cut -f1 | sed 's/$/=/'
        return
    fi
    local type
    type=$("$program" config --keys 2>/dev/null | awk -F'\t' -v k="$key" '$1 == k { print $2 }')
    case $type in
    enum\(*\)) type=${type#enum(}; type=${type%)}; tr '|' '\n' <<<"$type" ;;
    boolean) printf '%s\n' true false ;;
    esac
}

_keel() {
    local program=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local i command=
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -c|--config|-p|--profile|-s|--set|--log-level|--log-format|--trace|--pidfile) ((i++)) ;;
        =) ;;
        -*) ;;
        *) [[ ${COMP_WORDS[i-1]} == = ]] || { command=${COMP_WORDS[i]}; break; } ;;
        esac
    done

    # --set key=value: bash splits at '=', so the word before may be '=' or the key.
    if [[ $prev == = && ${COMP_WORDS[COMP_CWORD-3]} == @(-s|--set) ]]; then
        COMPREPLY=($(compgen -W "$(_keel_set_words "$program" "${COMP_WORDS[COMP_CWORD-2]}")" -- "$cur"))
        return
    fi
    if [[ $cur == = && $prev != = && ${COMP_WORDS[COMP_CWORD-2]} == @(-s|--set) ]]; then
        COMPREPLY=($(_keel_set_words "$program" "$prev"))
        return
    fi
    case $prev in
    -c|--config|--trace|--pidfile) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    -p|--profile) return ;;
    -s|--set) compopt -o nospace 2>/dev/null; COMPREPLY=($(compgen -W "$(_keel_set_words "$program")" -- "$cur")); return ;;
    --log-level) COMPREPLY=($(compgen -W "error warning notice info debug" -- "$cur")); return ;;
    --log-format) COMPREPLY=($(compgen -W "auto text json journal" -- "$cur")); return ;;
    --format) [[ $command == plan ]] && COMPREPLY=($(compgen -W "text dot" -- "$cur")) \
        || COMPREPLY=($(compgen -W "jwt json" -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        local extra=
        case $command in
        token) extra="--domain --role --format" ;;
        migrate) extra="--dry-run" ;;
        config) extra="--keys --check -t" ;;
        plan) extra="--format" ;;
        esac
        COMPREPLY=($(compgen -W "$(_keel_options "$program") $extra" -- "$cur"))
        return
    fi
    if [[ -z $command || ($command == plan && $prev == plan) ]]; then
        COMPREPLY=($(compgen -W "$(_keel_commands "$program")" -- "$cur"))
    fi
}

complete -F _keel keel
