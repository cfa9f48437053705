"""The speech-enhancement experiment as declared stages (see sepipe.engine for the runner).

    data -> train -------------------------------> evaluate:references --+
              \\-> [variant:V] -> convert:V -> compile:V                   +-> report
                              \\-------------> evaluate:V ----------------+
    (one chain per variant V; 'offline' variants convert from the dense variant's int8 model)

paths (RunPaths, where every artifact lives), tools (each stage's tool list), training,
quantize (fine-tune and convert), compiling (Vela through the compile cache), evaluation,
reporting, graph (the stages of one experiment, as a picklable spec a Ray worker rebuilds) and
api (one function per stage or command, and run_experiment).
"""
