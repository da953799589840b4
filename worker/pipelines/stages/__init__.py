"""The pipeline's stages, each a module with a run function from typed inputs to a typed
output (and, where the stage checkpoints, its save and restore next to it); the orchestrator
`worker.pipelines.compress` runs them in order and no stage imports it.

    load         (spec, task)                      -> Loaded
    dense        Loaded                            -> Dense       checkpoint `dense`
    drop_layers  Loaded, Dense                     -> Student     \\
    prune        Loaded, Student                   -> Pruned       > checkpoint `compress`
    recover      Loaded, Dense, Pruned             -> Recovered   /  (+ `prune_step`)
    structured   Loaded, Dense, Student            -> Recovered   in place of prune and
                                                                  recover (method structured;
                                                                  checkpoint `compress`,
                                                                  + `prune_step`)
    quantize     Recovered                         -> Quantized
    qat          Loaded, Dense, Recovered          -> Quantized   checkpoint `qat`
    evaluate     Loaded, Quantized                 -> Evaluated

`measure`, `export` and `package` (`worker.pipelines.report`, `export_stage`) take the
`report.Outcome` of them all. `plan` holds what the spec asks (stage plan, training
configs); `checkpoints` the job's checkpoints as the stages save and restore them.
"""
