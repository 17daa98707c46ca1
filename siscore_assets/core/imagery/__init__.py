"""Pixels onto the grid: tile ids and bounds (``grid``), imagery sources named in the countries
file (``sources``: the synthetic country, tile folders), granules and the patches cut from them."""
