"""What people run: the command line, the sampling/inpainting commands, the pipeline (`make demo`), the
notebook runner (`reproduce`) and the notebooks' helpers and widgets.
"""
