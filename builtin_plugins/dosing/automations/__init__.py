"""The built-in dosing automations: silent, turbidostat, chemostat, pid_morbidostat, fed_batch."""
