from seamline.cli import main

main()
