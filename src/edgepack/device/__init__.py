"""Real boards: inventory, SSH, deploy, on-board smoke and bench, fleet runs, regression checks."""
