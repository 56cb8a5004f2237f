"""What augpipe's four packages share, kept private (the leading underscore): name -> class
registries (`registry`), timers (`timing`), atomic file writes (`atomicio`), the device and
versions (`machine`) and `--plugin` loading (`plugins`). `loaders` and `augpipe` import only this
package, never each other (docs/ARCHITECTURE.md). Nothing here is API: the public names are
re-exported by the packages that own them (`augpipe.SyncTimer`, `augpipe.TimeAccount`...).
"""
