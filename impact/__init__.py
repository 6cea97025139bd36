"""Did it work? Evaluating the care the risk lists trigger.

The evaluation reads the data contract (and, where a plan asks, a model bundle) and never
training or serving: a plan (``plan``) names the intervention, its units and start dates, the
eligible population at baseline and the outcomes; ``outcomes`` counts them per person and
month from the events; the designs (``did``: staggered difference-in-differences, ``matching``:
a matched comparison, ``rd``: regression discontinuity at the list's cut-off, ``lottery``:
the list's recorded draws for scarce help compared as randomised trials) estimate the
effect; ``results`` is the typed record that the report, the command line and the service
read.
"""
