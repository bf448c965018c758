import sys

from rnnkit.cli.main import main

if __name__ == "__main__":  # not when multiprocessing's spawn re-imports this module
    sys.exit(main())
