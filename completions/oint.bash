# oint completion for bash: add this line to ~/.bashrc
#   eval "$(oint completion bash)"
_oint_completion() {
    local IFS=$'\n'
    local response completion type value

    response=$(env COMP_LINE="${COMP_LINE:0:COMP_POINT}" _OINT_COMPLETE=bash_complete "$1")

    COMPREPLY=()
    for completion in $response; do
        IFS=',' read -r type value <<< "$completion"
        if [[ $type == dir ]]; then
            COMPREPLY=()
            compopt -o dirnames
            return 0
        elif [[ $type == file ]]; then
            COMPREPLY=()
            compopt -o default
            return 0
        elif [[ $type == plain ]]; then
            COMPREPLY+=("$value")
        fi
    done
    return 0
}

complete -o nosort -F _oint_completion oint
