"""Users, roles and API tokens managed in the console's pages (issue 17), not only in Django's admin."""
