import sys

from oint_py.main import main

sys.exit(main())
