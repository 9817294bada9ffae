# oint completion for fish: save it in ~/.config/fish/completions/
#   mkdir -p ~/.config/fish/completions && oint completion fish > ~/.config/fish/completions/oint.fish
function _oint_completion
    set -l response (env _OINT_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) COMP_CWORD=(commandline -ct) oint)
    set -l prefix (string match -r -- '^-[^=]*=' (commandline -ct))

    for completion in $response
        set -l metadata (string split -m 1 -- "," $completion)

        if test "$metadata[1]" = "dir"
            __fish_complete_directories $metadata[2] | string replace -r -- '^' "$prefix"
        else if test "$metadata[1]" = "file"
            __fish_complete_path $metadata[2] | string replace -r -- '^' "$prefix"
        else if test "$metadata[1]" = "plain"
            printf '%s\n' $metadata[2]
        end
    end
end

complete --no-files --keep-order --command oint --arguments "(_oint_completion)"
