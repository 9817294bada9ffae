# oint completion for PowerShell: add this line to your $PROFILE
#   oint completion powershell | Out-String | Invoke-Expression
Register-ArgumentCompleter -Native -CommandName oint, oint.exe -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $word = "$wordToComplete"
    $env:COMP_LINE = $commandAst.ToString()
    $env:COMP_POINT = [string]($cursorPosition - $commandAst.Extent.StartOffset)
    $env:COMP_WORD = $word
    $env:_OINT_COMPLETE = 'powershell_complete'
    $encoding = [Console]::OutputEncoding
    try {
        try { [Console]::OutputEncoding = [System.Text.Encoding]::UTF8 } catch { }  # oint answers in UTF-8
        $response = @(& oint 2>$null)
    } finally {
        try { [Console]::OutputEncoding = $encoding } catch { }
        Remove-Item Env:_OINT_COMPLETE, Env:COMP_LINE, Env:COMP_POINT, Env:COMP_WORD -ErrorAction SilentlyContinue
    }
    # A result replaces the whole word: for --opt=value, keep its --opt= part.
    $prefix = ''
    if ($word -match '^(-[^=]*=)') { $prefix = $Matches[1] }
    foreach ($line in $response) {
        $type, $value = "$line" -split ',', 2
        if ($type -eq 'plain') {
            [System.Management.Automation.CompletionResult]::new($value, $value, 'ParameterValue', $value)
        } elseif ($type -eq 'file' -or $type -eq 'dir') {
            $folder = ''
            $cut = $value.LastIndexOfAny([char[]]'\/')
            if ($cut -ge 0) { $folder = $value.Substring(0, $cut + 1) }
            Get-ChildItem -Path "$value*" -Force -ErrorAction SilentlyContinue |
                Where-Object { $type -eq 'file' -or $_.PSIsContainer } |
                ForEach-Object {
                    $text = $prefix + $folder + $_.Name
                    if ($text -match '[\s''"`$&(){};,|@#<>]') { $text = "'" + $text.Replace("'", "''") + "'" }
                    $kind = 'ProviderItem'
                    if ($_.PSIsContainer) { $kind = 'ProviderContainer' }
                    [System.Management.Automation.CompletionResult]::new($text, $_.Name, $kind, $_.FullName)
                }
        }
    }
}
