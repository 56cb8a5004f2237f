"""Where images come from, resolved before any backend reads them (the lowest layer of loaders):
folders and their scan (`scan`), the reference decoding (`decode`), archives, names and the
embedded digits (`datasets`), downloads (`downloads`), WebDataset shards (`shards`), `.beton`
files (`beton`), the cache they are written into once (`cache`), and safe forking for the
writers and workers (`forking`). Nothing here imports a backend."""
