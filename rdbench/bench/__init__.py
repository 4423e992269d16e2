"""The measuring pipeline: columns (every result column), measure (one item into one row),
executor (where rows are computed), runner (the grid, into the store), store (the only writer)."""
