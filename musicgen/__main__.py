from musicgen.cli import main

main()
