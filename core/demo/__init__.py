"""The ``pio demo`` command: a simulated unit running a job, shown live in the terminal."""
