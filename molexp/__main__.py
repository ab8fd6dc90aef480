from molexp.cli.main import main

main()
