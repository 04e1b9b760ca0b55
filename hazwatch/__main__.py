from hazwatch.cli import main

main()
