"""Jobs for the executor test; a module of its own so worker processes can import it."""

import os


def work(job):
    if job == "crash":
        os._exit(1)  # the way a segfaulting codec library takes its worker down
    return job * 2
