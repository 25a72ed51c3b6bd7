from grouper.cli.main import main

main()
