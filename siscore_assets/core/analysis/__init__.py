"""What an analyst cites: district aggregates, covariates, validation against proxies, the
Table-1 regression design, and imported scores and proxies to compare against."""
