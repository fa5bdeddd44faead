"""Runs the paper's CIFAR-10 grid on Ray and prints its tables beside the published numbers.

python run_grid.py                      # the paper's 90 cells (9 trainings of 100 epochs)
python run_grid.py --preset smoke --data ../shared/data/cifar10-jpeg.tar.gz
python run_grid.py --dry-run            # the cells and the trainings that fill them
"""

import sys

from grid.cli import main

if __name__ == "__main__":
    sys.exit(main())
