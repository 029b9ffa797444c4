# Correct, written differently: index-based while loop, numpy floats welcome.
def early_stopping_epoch(val_losses, patience, min_delta=0.0):
    best, wait, e = float("inf"), 0, 0
    while e < len(val_losses):
        if val_losses[e] < best - min_delta:
            best, wait = val_losses[e], 0
        else:
            wait += 1
            if wait >= patience:
                break
        e += 1
    return min(e, len(val_losses) - 1)
