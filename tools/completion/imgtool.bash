# bash completion for imgtool(1)                                   -*- shell-script -*-
# Installed as /usr/share/bash-completion/completions/imgtool (bash-completion loads it on demand).
#
# Verbs and options come from `imgtool --help` and `imgtool VERB --help` (read once per shell and
# binary, then cached), so they follow the binary. Image names and IDs, container names and mount
# targets come from the store (`images`, `ps -a`, `mounts`, with the --root typed on the line).
# What the store prints is data: it is never evaluated, only compared and copied, and names that a
# reference or container name cannot hold (spaces, quotes, $, `, ;, ...) are not offered at all.

declare -gA _IMGTOOL_COMP_CACHE 2>/dev/null || true

# Runs the imgtool being completed with the store typed on the line; quiet on errors.
# Nothing when the store does not exist: a TAB never creates one (a mistyped --root included).
_imgtool_query()
{
    local -a argv=("$_imgtool_bin")
    local store=$_imgtool_root
    if [[ -n $store ]]; then
        argv+=(--root "$store")
    elif [[ -n ${IMGTOOL_ROOT-} ]]; then
        store=$IMGTOOL_ROOT
    elif ((EUID == 0)); then
        store=/var/lib/imgtool
    else
        store=${XDG_DATA_HOME:-$HOME/.local/share}/imgtool
    fi
    [[ -e $store/lock ]] || return 0
    "${argv[@]}" "$@" 2>/dev/null </dev/null
}

# The help of `imgtool [VERB...] --help`, cached per binary and verb.
_imgtool_help()
{
    local key="help|$_imgtool_bin|$*"
    if [[ -z ${_IMGTOOL_COMP_CACHE[$key]+set} ]]; then
        _IMGTOOL_COMP_CACHE[$key]=$("$_imgtool_bin" "$@" --help 2>/dev/null </dev/null)
    fi
    _imgtool_text=${_IMGTOOL_COMP_CACHE[$key]}
}

# Sets _imgtool_subcommands to the subcommands (aliases too) that `imgtool [VERB...] --help` lists
# (CLI11: a "Subcommands:" section of lines "  NAME[, ALIAS]   description").
_imgtool_parse_subcommands()
{
    _imgtool_help "$@"
    _imgtool_subcommands=()
    local line in=0 names name
    while IFS= read -r line; do
        if [[ $line == Subcommands:* ]]; then
            in=1
            continue
        fi
        ((in)) || continue
        [[ $line =~ ^\ +([a-z][a-z0-9-]*(,\ [a-z][a-z0-9-]*)*) ]] || { [[ -z $line ]] && in=0; continue; }
        names=${BASH_REMATCH[1]}
        for name in ${names//,/ }; do
            _imgtool_subcommands+=("$name")
        done
    done <<<"$_imgtool_text"
}

# Sets _imgtool_options (every option name), _imgtool_valued (those taking a value, space-padded)
# and _imgtool_choices[OPTION] (CLI11's TEXT:{a,b} value lists) from `imgtool [VERB...] --help`.
# An option line is indented and starts with -x,--long or --long; a value is an upper-case type
# name (TEXT, UINT, TEXT:{table,json}) after the names.
_imgtool_parse_options()
{
    _imgtool_help "$@"
    _imgtool_options=()
    _imgtool_valued=" "
    _imgtool_choices=()
    local line names type name
    while IFS= read -r line; do
        [[ $line =~ ^\ +(-[^\ ,]+(,\ ?-[^\ ,]+)*)(\ +([A-Z]+(:\{[^}]*\})?)([\ ]|$))? ]] || continue
        names=${BASH_REMATCH[1]// /}
        type=${BASH_REMATCH[4]}
        for name in ${names//,/ }; do
            [[ $name == -* ]] || continue
            _imgtool_options+=("$name")
            if [[ -n $type ]]; then
                _imgtool_valued+="$name "
                if [[ $type =~ :\{([^}]*)\} ]]; then
                    _imgtool_choices[$name]=${BASH_REMATCH[1]//,/ }
                fi
            fi
        done
    done <<<"$_imgtool_text"
}

# Adds each argument that starts with $cur to COMPREPLY, once (no expansion of any kind).
_imgtool_offer()
{
    local word
    local -A seen=()
    for word in "${COMPREPLY[@]}"; do
        seen[x$word]=1
    done
    for word in "$@"; do
        [[ $word == "$cur"* && -z ${seen[x$word]} ]] || continue
        seen[x$word]=1
        COMPREPLY+=("$word")
    done
}

_imgtool_safe_name() # a name of the store that can be offered as it is
{
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$ ]]
}

# Image names (REPOSITORY:TAG, untagged rows skipped) and short IDs from `imgtool images`.
_imgtool_images()
{
    local repo tag id rest
    local -a found=()
    while read -r repo tag id rest; do
        # A row whose ID column is no ID is not a row of the table (a name with a space, say).
        [[ $id =~ ^[0-9a-f]{4,64}$ ]] || continue
        found+=("$id")
        if [[ $repo != "<none>" && $tag != "<none>" ]] && _imgtool_safe_name "$repo:$tag"; then
            found+=("$repo:$tag")
        fi
    done < <(_imgtool_query images)
    _imgtool_offer "${found[@]}"
}

# Container names (the NAMES column) and IDs from `imgtool ps -a`.
_imgtool_containers()
{
    local line header="" at=-1 name id
    local -a found=()
    while IFS= read -r line; do
        if [[ -z $header ]]; then
            header=$line
            local before=${header%%NAMES*}
            [[ $before != "$header" ]] && at=${#before}
            continue
        fi
        id=${line%% *}
        [[ $id =~ ^[0-9a-f]{12,64}$ ]] && found+=("$id")
        if ((at >= 0)); then
            name=${line:at}
            name=${name%%[[:space:]]*}
            [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] && found+=("$name")
        fi
    done < <(_imgtool_query ps -a)
    _imgtool_offer "${found[@]}"
}

# Mount targets (the last column of `imgtool mounts`, an absolute path that may hold spaces).
_imgtool_targets()
{
    local line
    local -a found=()
    while IFS= read -r line; do
        [[ $line =~ ^[^\ ]+\ +[^\ ]+\ +[^\ ]+\ +(/.*)$ ]] || continue
        found+=("${BASH_REMATCH[1]}")
    done < <(_imgtool_query mounts | tail -n +2)
    # Paths are offered as they are; readline quotes what the shell would interpret.
    compopt -o filenames 2>/dev/null
    _imgtool_offer "${found[@]}"
}

_imgtool_files() # [-d]
{
    if declare -F _filedir >/dev/null; then
        _filedir "$@"
    else
        local -a names
        compopt -o filenames 2>/dev/null
        if [[ $1 == -d ]]; then
            mapfile -t names < <(compgen -d -- "$cur")
        else
            mapfile -t names < <(compgen -f -- "$cur")
        fi
        COMPREPLY+=("${names[@]}")
    fi
}

# A word as the shell will see it, for --root: quotes and backslashes removed, ~/ expanded. Never
# evaluated.
_imgtool_unquote()
{
    local w=$1 out="" c q=""
    local i
    for ((i = 0; i < ${#w}; i++)); do
        c=${w:i:1}
        if [[ -n $q ]]; then
            if [[ $c == "$q" ]]; then
                q=""
            elif [[ $q == '"' && $c == "\\" ]]; then
                ((i++))
                out+=${w:i:1}
            else
                out+=$c
            fi
        elif [[ $c == "'" || $c == '"' ]]; then
            q=$c
        elif [[ $c == "\\" ]]; then
            ((i++))
            out+=${w:i:1}
        else
            out+=$c
        fi
    done
    # shellcheck disable=SC2088  # a literal "~/" typed on the line
    [[ $out == "~/"* ]] && out=$HOME/${out#"~/"}
    _imgtool_word=$out
}

_imgtool()
{
    # shellcheck disable=SC2034  # split is set by _init_completion -s
    local cur prev words cword split=false
    if declare -F _init_completion >/dev/null; then
        _init_completion -s -n : || return
    else
        COMPREPLY=()
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
    fi

    local _imgtool_bin=${words[0]} _imgtool_root="" _imgtool_text _imgtool_word
    # shellcheck disable=SC2088
    [[ $_imgtool_bin == "~/"* ]] && _imgtool_bin=$HOME/${_imgtool_bin#"~/"}
    local -a _imgtool_subcommands _imgtool_options
    local -A _imgtool_choices
    local _imgtool_valued

    # The global options' values, and the verb (with its subcommand, as in `system df`).
    _imgtool_parse_options
    local global_valued=$_imgtool_valued
    local -a verb=()
    local i w first_arg=0
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if [[ $w == --root=* ]]; then
            _imgtool_unquote "${w#--root=}"
            _imgtool_root=$_imgtool_word
        elif [[ $w == --root ]] && ((i + 1 < cword)); then
            _imgtool_unquote "${words[i + 1]}"
            _imgtool_root=$_imgtool_word
            ((i++))
        elif [[ $w == -* ]]; then
            [[ $global_valued == *" $w "* && $w != *=* ]] && ((i++))
        else
            _imgtool_parse_subcommands "${verb[@]}"
            local s known=""
            for s in "${_imgtool_subcommands[@]}"; do
                [[ $s == "$w" ]] && known=1
            done
            [[ -n $known ]] || break
            verb+=("$w")
            first_arg=$((i + 1))
        fi
    done

    if ((${#verb[@]} == 0)) || { ((first_arg == cword)) && [[ $cur != -* ]] && _imgtool_parse_subcommands "${verb[@]}" && ((${#_imgtool_subcommands[@]})); }; then
        if [[ $cur == -* ]]; then
            _imgtool_parse_options "${verb[@]}"
            _imgtool_offer "${_imgtool_options[@]}"
        else
            _imgtool_parse_subcommands "${verb[@]}"
            _imgtool_offer "${_imgtool_subcommands[@]}"
        fi
        [[ ${#verb[@]} -eq 0 && $prev == --root ]] && { COMPREPLY=(); _imgtool_files -d; }
        return
    fi

    _imgtool_parse_options "${verb[@]}"
    local valued="$_imgtool_valued$global_valued"

    # The value of an option.
    if [[ $valued == *" $prev "* ]]; then
        if [[ -n ${_imgtool_choices[$prev]} ]]; then
            local -a choices
            read -ra choices <<<"${_imgtool_choices[$prev]}"
            _imgtool_offer "${choices[@]}"
            return
        fi
        case $prev in
            --root | --upper | --cert-dir) _imgtool_files -d ;;
            --env-file | --authfile | -o | --output) _imgtool_files ;;
            --base) _imgtool_images ;;
            --security-opt) _imgtool_offer seccomp=unconfined seccomp= no-new-privileges; compopt -o nospace 2>/dev/null ;;
            --format) _imgtool_offer table json ;;
        esac
        __ltrim_colon_completions "$cur" 2>/dev/null
        return
    fi

    # Which positional argument this is (options with a value skip theirs; `--` ends options).
    local npos=0 dashdash=0 has_rm=0 has_upper=0
    for ((i = first_arg; i < cword; i++)); do
        w=${words[i]}
        if ((dashdash)) || [[ $w != -* || $w == - ]]; then
            ((npos++))
            # run and exec: what follows IMAGE or CONTAINER is the command's, not imgtool's.
        elif [[ $w == -- ]]; then
            dashdash=1
        else
            [[ $w == --rm ]] && has_rm=1
            [[ $w == --upper || $w == --upper=* ]] && has_upper=1
            [[ $valued == *" $w "* ]] && ((i++))
        fi
    done

    local v="${verb[*]}"
    local takes_command=0
    case $v in run | exec) ((npos >= 1)) && takes_command=1 ;; unshare) takes_command=1 ;; bundle) ((npos >= 2)) && takes_command=1 ;; esac
    if [[ $cur == -* ]] && ((!dashdash && !takes_command)); then
        _imgtool_offer "${_imgtool_options[@]}"
        return
    fi

    case $v in
        run) ((npos == 0)) && _imgtool_images ;;
        mount) if ((npos == 0)); then _imgtool_images; elif ((npos == 1)); then _imgtool_files -d; fi ;;
        bundle)
            if ((has_rm)); then
                ((npos == 0)) && _imgtool_files -d
            elif ((npos == 0)); then
                _imgtool_images
            elif ((npos == 1)); then
                _imgtool_files -d
            fi
            ;;
        inspect | rmi | save) _imgtool_images ;;
        tag) ((npos == 0)) && _imgtool_images ;;
        rm) _imgtool_containers; _imgtool_images ;;
        stop) _imgtool_containers ;;
        exec | logs) ((npos == 0)) && _imgtool_containers ;;
        commit) ((npos == 0 && !has_upper)) && _imgtool_containers ;;
        umount | unmount) ((npos == 0)) && _imgtool_targets ;;
        pull-local) ((npos == 0)) && _imgtool_files ;;
    esac
    if ((takes_command)) && [[ $v != bundle || $npos -ge 2 ]]; then
        local cmdpos=1
        [[ $v == unshare ]] && cmdpos=0
        [[ $v == bundle ]] && cmdpos=2
        if ((npos == cmdpos)); then
            local -a commands
            mapfile -t commands < <(compgen -c -- "$cur")
            COMPREPLY+=("${commands[@]}")
        elif ((npos > cmdpos)); then
            _imgtool_files
        fi
    fi
    __ltrim_colon_completions "$cur" 2>/dev/null
    return 0
} &&
    complete -F _imgtool imgtool

# ex: filetype=sh
