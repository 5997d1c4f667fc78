from dmd3c.cli import main

main()
