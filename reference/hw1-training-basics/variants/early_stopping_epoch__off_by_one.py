# Classic mistake: waits one epoch too long (wait > patience).
def early_stopping_epoch(val_losses, patience, min_delta=0.0):
    best = float("inf")
    wait = 0
    for epoch, loss in enumerate(val_losses):
        if loss < best - min_delta:
            best = loss
            wait = 0
        else:
            wait += 1
            if wait > patience:
                return epoch
    return len(val_losses) - 1
