"""What a run reports: one verdict type and the scores behind it, figure and table writers,
the papers' reference tables, the README's generated blocks."""
