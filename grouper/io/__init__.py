"""Case files in and result files out: formats, column mapping and the wide 病案首页 layout,
atomic all-or-nothing writes. Knows nothing of grouping."""
