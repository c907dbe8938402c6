"""Studies, raters, scheduling, votes, curation, statistics, export and GEdit-Bench evaluation."""
