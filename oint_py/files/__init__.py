"""The files layer: the one private-file opener, the one private-folder maker and the rules that check
them (private.py), and the one atomic writer (atomic.py). Nothing here imports a module above it."""
