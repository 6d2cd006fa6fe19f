from flowscan.cli import main

main()
