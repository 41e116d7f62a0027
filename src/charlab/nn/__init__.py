"""nn: the layers written out by hand (Linear, BatchNorm, recurrent cells, attention, dropout) and their init."""
