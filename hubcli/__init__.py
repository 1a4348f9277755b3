"""The ``hub`` console command: the one place where the layers are put together (composition root)."""
