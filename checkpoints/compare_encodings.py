"""Encoding comparison: the same network and budget on two encodings.

python checkpoints/compare_encodings.py ENCODING DATA_DIR OUT EPOCHS
"""

import sys

from musicgen.config import EncodingConfig, ModelConfig, RunConfig, TrainConfig
from musicgen.trainer import train

if __name__ == "__main__":
    name, data, out, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    config = RunConfig(
        encoding=EncodingConfig(name=name, controls=True),
        model=ModelConfig(cell="gru", layers=2, units=256),
        train=TrainConfig(epochs=epochs, patience=epochs, seed=0),
    )
    result = train(config, data, out, force=True, verbose=2, log=print)
    print(result)
