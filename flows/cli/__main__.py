"""`python -m flows.cli`: the same as the `eks-cilium` command."""

import sys

from flows.cli import main

sys.exit(main())
