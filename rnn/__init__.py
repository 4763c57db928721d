"""M, the MDN-RNN: NumPy inference in rnn.rnn, Keras training model in rnn.keras_rnn (rnn.json lives here too)."""
