"""movierec's HTTP service. Importing it loads no model and opens no database."""
