"""The gRPC edge: servicers and the interceptor. Protobuf types stop here."""
