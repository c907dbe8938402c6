"""The Arena: a visitor's image and instruction, two anonymous systems, a vote, a live leaderboard.

Modules: ``contestants`` (declaring and running systems), ``battles`` (the battle flow), ``store`` (database
rows, moderation, failure counts), ``leaderboard`` (ratings with CIs), ``battle_log`` (clean_battle export/import).
See docs/arena.md.
"""
