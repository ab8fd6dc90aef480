#compdef molexp

_molexp_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _MOLEXP_COMPLETE=complete_zsh molexp)
}

compdef _molexp_completion molexp
