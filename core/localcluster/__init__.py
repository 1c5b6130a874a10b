"""A local simulated cluster: several units on one machine, supervised by supervisord."""
