"""Infrastructure every layer may use: paths, atomic writes and content hashes, the cached
parallel job map, the params schema base, training primitives, the registry. Imports nothing
else from nml."""
