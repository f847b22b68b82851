"""pytest plugin with real engine fixtures (see :mod:`colsplade.testing.plugin`)."""
