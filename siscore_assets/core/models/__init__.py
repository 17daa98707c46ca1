"""The learned parts: the habitation CNN (pretraining + uninhabited filter), clustering and
DeepCluster, the rank scorer trained on POG paths, and Grad-CAM of the scorer."""
