"""`python -m dnnkit`."""

from dnnkit.cli.app import main

if __name__ == "__main__":
    main()
