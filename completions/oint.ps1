# oint completion for PowerShell: add this line to your $PROFILE
#   . path\to\oint.ps1
Register-ArgumentCompleter -Native -CommandName oint, oint.exe -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $line = $commandAst.ToString()
    $upTo = [Math]::Min($line.Length, $cursorPosition - $commandAst.Extent.StartOffset)
    $env:COMP_LINE = $line.Substring(0, [Math]::Max(0, $upTo))
    $env:_OINT_COMPLETE = "powershell_complete"
    try {
        & oint | ForEach-Object {
            $type, $value = $_ -split ",", 2
            if ($type -eq "plain") {
                [System.Management.Automation.CompletionResult]::new($value, $value, "ParameterValue", $value)
            }
        }
    } finally {
        Remove-Item Env:_OINT_COMPLETE -ErrorAction SilentlyContinue
        Remove-Item Env:COMP_LINE -ErrorAction SilentlyContinue
    }
}
