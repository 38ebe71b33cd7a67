"""What a run reports: one verdict type and the scores behind it, the notebooks' Findings, figure
and table writers with their provenance, the run's status, the HTML report (`nml report`), the
comparison of two runs (`nml diff`), the README's generated blocks, the papers' reference tables.
"""
