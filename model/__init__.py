"""movierec's ML library: a movie (synopsis + images) -> a 256-d L2-normalised vector.

The service imports this package; training and evaluation live here too but are never imported
by the service's request path.
"""
