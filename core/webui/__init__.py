"""The Pioreactor web UI on reactorkit: its build (fetched at run time), the defaults of the config it reads, and its CLI."""
