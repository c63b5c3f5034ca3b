"""Multi-task reward feedback learning (OneReward Algorithms 1 and 2)."""
