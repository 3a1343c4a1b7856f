from usagectl.cli import main

main()
